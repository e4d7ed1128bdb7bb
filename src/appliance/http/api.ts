/**
 * The console's HTTP API under /api/v1 (JSON; a schema on every route; OpenAPI at
 * /api/v1/openapi.json). Authentication: a session cookie from POST /api/v1/session, or
 * HTTP basic auth with the console credentials for scripts. Session requests that change
 * state carry the session's CSRF token in `x-csrf-token`; any request whose Origin is
 * another site is refused. Uploads stream to disk (never buffered), in resumable chunks.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import { AirgapError } from '../../kit/errors.js';
import { formatBytes } from '../../kit/text.js';
import type { ApplianceStatus, ConnectionDetails } from '../daemon/appliance.js';
import { LoginLimiter, SESSION_COOKIE, SESSION_SECONDS, SessionStore, csrfOk, type Session } from './console-auth.js';
import { secretsEqual, verifyPasswordAsync } from '../security/credentials.js';
import { errorSchema, limitQuery, openObject, parseBasicAuth } from './common.js';
import type { ImportUpdate } from '../import/runner.js';
import type { ApplianceEvent } from '../store/events.js';
import type { ImportRow } from '../store/imports.js';
import type { ArtifactRow } from '../store/releases.js';

/** What the console API needs of the appliance. */
export interface ConsoleOperations {
  /** The console account: user name and scrypt hash of its password. */
  consoleAccount(): { username: string; passwordHash: string };
  status(): Promise<ApplianceStatus>;
  connectionDetails(): ConnectionDetails;
  caPem(): string;
  releases(): unknown;
  artifacts(kind: ArtifactRow['kind']): ArtifactRow[];
  listImports(limit: number): ImportRow[];
  getImport(id: number): ImportRow | undefined;
  followImport(id: number, onUpdate: (u: ImportUpdate) => void, onDone: (row: ImportRow) => void): () => void;
  /** Queues an import of a file in the uploads folder; the file is removed when the import ends. */
  queueUpload(file: string, actor: string, allowDowngrade: boolean): { import: ImportRow; queuePosition: number };
  events(limit: number): ApplianceEvent[];
  recordEvent(actor: string, kind: string, message: string, data?: Record<string, unknown>): void;
  /** Where uploads are written. */
  uploadsDir: string;
  /** Free bytes on the uploads volume. */
  freeBytes(dir: string): Promise<number>;
  /** Largest upload accepted, bytes. */
  maxUploadBytes: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    consoleUser?: string;
    consoleSession?: Session;
  }
}

const open = openObject;
const list = (name: string) => ({ type: 'object', properties: { [name]: { type: 'array', items: open } } });
const std = (ok: Record<string, unknown>, okStatus = 200) => ({ [okStatus]: ok, 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema, 413: errorSchema, 429: errorSchema, 507: errorSchema });

interface Upload {
  id: string;
  name: string;
  size: number;
  offset: number;
  path: string;
  busy: boolean;
  /** Last activity, ms since the epoch. */
  touched: number;
}

/** Uploads idle this long are dropped with their file. */
const UPLOAD_IDLE_MS = 24 * 3600 * 1000;
/** Open uploads at once. */
const MAX_OPEN_UPLOADS = 4;
/** A chunk that sends nothing for this long is cut, so the upload can be resumed. */
const UPLOAD_STALL_MS = 60_000;

/** A .bin name as a browser sends it: a plain file name. */
const UPLOAD_NAME = /^[A-Za-z0-9._+-]{1,200}\.bin$/;

/**
 * Registers /api/v1 on `app` (the HTTPS app). `secureCookie` is false only for inject
 * tests over plain HTTP.
 */
export async function registerApi(app: FastifyInstance, ops: ConsoleOperations, options: { secureCookie?: boolean } = {}): Promise<void> {
  const sessions = new SessionStore();
  const limiter = new LoginLimiter();
  const uploads = new Map<string, Upload>();
  const verifiedBasic = new Map<string, number>();
  await app.register(fastifyCookie);
  // Uploads live in memory: partial files of an earlier run can never be resumed.
  await mkdir(ops.uploadsDir, { recursive: true, mode: 0o700 });
  for (const name of await readdir(ops.uploadsDir)) if (name.endsWith('.partial')) await rm(join(ops.uploadsDir, name), { force: true });
  // Idle uploads expire, so abandoned ones give their disk space back.
  const sweep = setInterval(() => {
    for (const u of uploads.values()) {
      if (!u.busy && Date.now() - u.touched > UPLOAD_IDLE_MS) {
        uploads.delete(u.id);
        void rm(u.path, { force: true });
      }
    }
  }, 60_000);
  sweep.unref();
  app.addHook('onClose', async () => clearInterval(sweep));

  await app.register(async (api) => {
    // .bin bodies arrive as streams; nothing buffers them.
    api.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

    // A Basic challenge makes browsers open their own login dialog over the console's (and
    // hang a fetch); browsers (Sec-Fetch-*) get the session scheme, scripts the Basic one.
    const tooManyLogins = (reply: FastifyReply, wait: number) =>
      reply.status(429).header('retry-after', String(wait)).send({ code: 'AG_TOO_MANY_LOGINS', message: `too many failed logins; try again in ${wait} s` });

    const unauthorized = (request: FastifyRequest, reply: FastifyReply) =>
      reply
        .status(401)
        .header('www-authenticate', request.headers['sec-fetch-mode'] ? 'Session realm="airgap console"' : 'Basic realm="airgap console", charset="UTF-8"')
        .send({ code: 'AG_UNAUTHORIZED', message: 'log in with the console credentials (airgap-setup prints them)' });

    api.addHook('onRequest', async (request, reply) => {
      const path = request.url.split('?')[0]!;
      // A browser on another site must not drive the console, whatever credentials it holds.
      const origin = request.headers.origin;
      if (origin && !['GET', 'HEAD', 'OPTIONS'].includes(request.method)) {
        let sameSite = false;
        try {
          sameSite = new URL(origin).host === request.headers.host;
        } catch {
          sameSite = false;
        }
        if (!sameSite) return reply.status(403).send({ code: 'AG_CROSS_SITE', message: 'cross-site requests are refused' });
      }
      if (path === '/api/v1/session' && request.method === 'POST') return;
      if (path === '/api/v1/openapi.json') return;
      const session = sessions.get(request.cookies[SESSION_COOKIE]);
      if (session) {
        if (!['GET', 'HEAD'].includes(request.method) && !csrfOk(session, request.headers['x-csrf-token'] as string | undefined)) {
          return reply.status(403).send({ code: 'AG_CSRF', message: 'the request lacks the session\'s CSRF token (x-csrf-token)' });
        }
        request.consoleUser = session.username;
        request.consoleSession = session;
        return;
      }
      const header = request.headers.authorization ?? '';
      if (/^Basic\s/i.test(header)) {
        const given = parseBasicAuth(header);
        const account = ops.consoleAccount();
        const client = LoginLimiter.clientOf(request.ip);
        const wait = limiter.retryAfter(client);
        if (wait) return tooManyLogins(reply, wait);
        // A script sends the same header on every request: a verified one is trusted for a minute.
        const key = createHash('sha256').update(`${account.passwordHash}\0${header}`).digest('hex');
        if ((verifiedBasic.get(key) ?? 0) > Date.now()) {
          request.consoleUser = account.username;
          return;
        }
        if (given && secretsEqual(given.username, account.username) && (await verifyPasswordAsync(given.password, account.passwordHash))) {
          if (verifiedBasic.size > 1000) verifiedBasic.clear();
          verifiedBasic.set(key, Date.now() + 60_000);
          request.consoleUser = account.username;
          return;
        }
        limiter.fail(client);
        ops.recordEvent(client, 'console.login_failed', `basic auth refused for '${(given?.username ?? '').slice(0, 64)}'`, { client });
      }
      return unauthorized(request, reply);
    });

    api.post('/session', {
      schema: {
        tags: ['session'],
        body: { type: 'object', properties: { username: { type: 'string', maxLength: 256 }, password: { type: 'string', maxLength: 1024 } }, required: ['username', 'password'], additionalProperties: false },
        response: std({ type: 'object', properties: { username: { type: 'string' }, csrfToken: { type: 'string' } } }),
      },
    }, async (request, reply) => {
      const { username, password } = request.body as { username: string; password: string };
      const client = LoginLimiter.clientOf(request.ip);
      const wait = limiter.retryAfter(client);
      if (wait) return tooManyLogins(reply, wait);
      const account = ops.consoleAccount();
      const userOk = secretsEqual(username, account.username);
      const passOk = await verifyPasswordAsync(password, account.passwordHash);
      if (!userOk || !passOk) {
        limiter.fail(client);
        ops.recordEvent(client, 'console.login_failed', `login refused for '${username.slice(0, 64)}'`, { client });
        return reply.status(401).send({ code: 'AG_BAD_LOGIN', message: 'wrong username or password' });
      }
      limiter.succeed(client);
      const session = sessions.create(account.username);
      ops.recordEvent(account.username, 'console.login', `${account.username} logged in from ${client}`, { client });
      reply.setCookie(SESSION_COOKIE, session.id, { path: '/', httpOnly: true, secure: options.secureCookie !== false, sameSite: 'strict', maxAge: SESSION_SECONDS });
      return { username: session.username, csrfToken: session.csrfToken };
    });

    api.get('/session', { schema: { tags: ['session'], response: std({ type: 'object', properties: { username: { type: 'string' }, csrfToken: { type: ['string', 'null'] } } }) } }, async (request) => ({
      username: request.consoleUser!,
      csrfToken: request.consoleSession?.csrfToken ?? null,
    }));

    api.delete('/session', { schema: { tags: ['session'], response: { 204: { type: 'null' } } } }, async (request, reply) => {
      sessions.delete(request.consoleSession?.id);
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.status(204).send();
    });

    api.get('/status', { schema: { tags: ['appliance'], response: std(open) } }, async () => ops.status());

    api.get('/connection', {
      schema: {
        tags: ['appliance'],
        querystring: { type: 'object', properties: { reveal: { type: 'boolean', default: false } }, additionalProperties: false },
        response: std(open),
      },
    }, async (request) => {
      const details = ops.connectionDetails();
      const reveal = (request.query as { reveal: boolean }).reveal;
      if (reveal) {
        ops.recordEvent(request.consoleUser!, 'console.passwords_revealed', `${request.consoleUser} revealed the passwords`);
        return details;
      }
      const hide = <T extends { password: string }>(c: T) => ({ ...c, password: null });
      return { ...details, repository: hide(details.repository), imageRegistry: hide(details.imageRegistry), packRegistry: hide(details.packRegistry), console: hide(details.console) };
    });

    api.get('/ca.crt', { schema: { tags: ['appliance'], response: { 200: { type: 'string' } } } }, async (_request, reply) =>
      reply.type('application/x-pem-file').header('content-disposition', 'attachment; filename="airgap-ca.crt"').send(ops.caPem()),
    );

    api.get('/releases', { schema: { tags: ['content'], response: std(open) } }, async () => ops.releases());
    for (const [route, kind] of [['images', 'image'], ['charts', 'chart'], ['packs', 'pack'], ['files', 'file']] as const) {
      api.get(`/${route}`, { schema: { tags: ['content'], response: std(list(route)) } }, async () => ({ [route]: ops.artifacts(kind) }));
    }

    api.get('/events', {
      schema: {
        tags: ['appliance'],
        querystring: limitQuery(100),
        response: std(list('events')),
      },
    }, async (request) => ({ events: ops.events((request.query as { limit: number }).limit) }));

    api.get('/imports', {
      schema: {
        tags: ['imports'],
        querystring: limitQuery(50),
        response: std(list('imports')),
      },
    }, async (request) => ({ imports: ops.listImports((request.query as { limit: number }).limit) }));

    const idParams = { type: 'object', properties: { id: { type: 'integer', minimum: 1 } }, required: ['id'] } as const;
    api.get('/imports/:id', { schema: { tags: ['imports'], params: idParams, response: std(open) } }, async (request) => {
      const { id } = request.params as { id: number };
      const row = ops.getImport(id);
      if (!row) throw new AirgapError('AG_NOT_FOUND', `there is no import ${id}`);
      return row;
    });

    // Server-sent events: `update` while queued or running, one `done` at the end.
    api.get('/imports/:id/events', { schema: { tags: ['imports'], params: idParams } }, async (request, reply) => {
      const { id } = request.params as { id: number };
      if (!ops.getImport(id)) throw new AirgapError('AG_NOT_FOUND', `there is no import ${id}`);
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      const send = (event: string, data: unknown) => reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      const unsubscribe = ops.followImport(id, (u) => void (reply.raw.writableNeedDrain || send('update', u)), (row) => {
        send('done', row);
        reply.raw.end();
      });
      request.raw.on('close', unsubscribe);
    });

    // Resumable uploads: create, then PUT chunks with Content-Range, then import.
    api.post('/uploads', {
      schema: {
        tags: ['imports'],
        body: { type: 'object', properties: { name: { type: 'string' }, size: { type: 'integer', minimum: 1 } }, required: ['name', 'size'], additionalProperties: false },
        response: std({ type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, size: { type: 'integer' }, offset: { type: 'integer' } } }, 201),
      },
    }, async (request, reply) => {
      const { name, size } = request.body as { name: string; size: number };
      const upload = await createUpload(name, size);
      return reply.status(201).send(publicUpload(upload));
    });

    api.get('/uploads/:id', {
      schema: { tags: ['imports'], params: { type: 'object', properties: { id: { type: 'string' } } }, response: std({ type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, size: { type: 'integer' }, offset: { type: 'integer' } } }) },
    }, async (request) => publicUpload(uploadOf((request.params as { id: string }).id)));

    api.put('/uploads/:id', {
      schema: { tags: ['imports'], params: { type: 'object', properties: { id: { type: 'string' } } }, response: std({ type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, size: { type: 'integer' }, offset: { type: 'integer' } } }) },
    }, async (request) => {
      const upload = uploadOf((request.params as { id: string }).id);
      if (!/^application\/octet-stream\b/i.test(request.headers['content-type'] ?? '')) throw new ApiError(415, 'AG_UPLOAD_TYPE', 'send chunks as application/octet-stream');
      const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(request.headers['content-range'] ?? ''));
      const start = range ? Number(range[1]) : upload.offset;
      if (range && Number(range[3]) !== upload.size) throw new ApiError(400, 'AG_UPLOAD_RANGE', `Content-Range total ${range[3]} is not the upload's size ${upload.size}`);
      const length = Number(request.headers['content-length']);
      if (range && Number.isSafeInteger(length) && Number(range[2]) - start + 1 !== length) throw new ApiError(400, 'AG_UPLOAD_RANGE', `Content-Range ${range[1]}-${range[2]} does not match the ${length}-byte body`);
      if (start !== upload.offset) throw new ApiError(409, 'AG_UPLOAD_OFFSET', `the upload is at byte ${upload.offset}, not ${start}`, 'resume from the offset GET /api/v1/uploads/:id gives');
      if (upload.busy) throw new ApiError(409, 'AG_UPLOAD_BUSY', 'another request is writing this upload');
      upload.busy = true;
      try {
        await appendBody(upload, request.body as Readable);
      } finally {
        upload.busy = false;
      }
      return publicUpload(upload);
    });

    api.delete('/uploads/:id', { schema: { tags: ['imports'], params: { type: 'object', properties: { id: { type: 'string' } } }, response: { 204: { type: 'null' }, 404: errorSchema, 409: errorSchema } } }, async (request, reply) => {
      const upload = uploadOf((request.params as { id: string }).id);
      if (upload.busy) throw new ApiError(409, 'AG_UPLOAD_BUSY', 'a chunk of this upload is being written');
      uploads.delete(upload.id);
      await rm(upload.path, { force: true });
      return reply.status(204).send();
    });

    api.post('/imports', {
      schema: {
        tags: ['imports'],
        querystring: { type: 'object', properties: { name: { type: 'string' }, allowDowngrade: { type: 'boolean', default: false } }, additionalProperties: false },
        response: std({ type: 'object', properties: { import: open, queuePosition: { type: 'integer' } } }, 202),
      },
    }, async (request, reply) => {
      const query = request.query as { name?: string; allowDowngrade: boolean };
      let upload: Upload;
      if (/^application\/octet-stream\b/i.test(request.headers['content-type'] ?? '')) {
        // One request: the body is the whole .bin.
        const size = Number(request.headers['content-length']);
        if (!Number.isSafeInteger(size) || size <= 0) throw new ApiError(411, 'AG_UPLOAD_LENGTH', 'send the .bin with its Content-Length, or use the chunked /uploads');
        upload = await createUpload(query.name ?? 'upload.bin', size);
        try {
          await appendBody(upload, request.body as Readable);
        } catch (err) {
          uploads.delete(upload.id);
          await rm(upload.path, { force: true });
          throw err;
        }
      } else {
        const body = (request.body ?? {}) as { uploadId?: unknown; allowDowngrade?: unknown };
        if (typeof body.uploadId !== 'string') throw new ApiError(400, 'AG_BAD_REQUEST', 'send {"uploadId": …} of a finished upload, or the .bin itself as application/octet-stream');
        upload = uploadOf(body.uploadId);
        if (body.allowDowngrade === true) query.allowDowngrade = true;
      }
      if (upload.offset !== upload.size) throw new ApiError(409, 'AG_UPLOAD_INCOMPLETE', `the upload has ${upload.offset} of ${upload.size} bytes`, 'send the rest with PUT /api/v1/uploads/:id');
      uploads.delete(upload.id);
      const file = join(ops.uploadsDir, `${upload.id}-${upload.name}`);
      await rename(upload.path, file);
      const queued = ops.queueUpload(file, request.consoleUser!, query.allowDowngrade);
      return reply.status(202).send(queued);
    });

    api.get('/openapi.json', { schema: { hide: true } }, async () => (app as FastifyInstance & { swagger(): unknown }).swagger());

    function publicUpload(u: Upload) {
      return { id: u.id, name: u.name, size: u.size, offset: u.offset };
    }

    function uploadOf(id: string): Upload {
      const upload = uploads.get(id);
      if (!upload) throw new ApiError(404, 'AG_NOT_FOUND', `there is no upload ${id}`, 'start a new one with POST /api/v1/uploads');
      upload.touched = Date.now();
      return upload;
    }

    async function createUpload(name: string, size: number): Promise<Upload> {
      if (!UPLOAD_NAME.test(name)) throw new ApiError(400, 'AG_UPLOAD_NAME', `'${name.slice(0, 100)}' is not a .bin file name`);
      if (size > ops.maxUploadBytes) throw new ApiError(413, 'AG_UPLOAD_TOO_LARGE', `${formatBytes(size)} is more than the ${formatBytes(ops.maxUploadBytes)} allowed`);
      if (uploads.size >= MAX_OPEN_UPLOADS) throw new ApiError(429, 'AG_UPLOADS_OPEN', `${uploads.size} uploads are open already`, 'finish or DELETE one of them (GET /api/v1/imports lists the imports)');
      await mkdir(ops.uploadsDir, { recursive: true, mode: 0o700 });
      // Space promised to the open uploads counts as used.
      const promised = [...uploads.values()].reduce((n, u) => n + (u.size - u.offset), 0);
      const free = (await ops.freeBytes(ops.uploadsDir)) - promised;
      if (size + 64 * 1024 * 1024 > free) throw new ApiError(507, 'AG_NO_SPACE', `not enough space for the upload: ${formatBytes(size)} needed, ${formatBytes(Math.max(free, 0))} free`, 'free space on the appliance disk, then upload again');
      const id = randomBytes(12).toString('hex');
      const upload = { id, name, size, offset: 0, path: join(ops.uploadsDir, `.${id}.partial`), busy: false, touched: Date.now() };
      uploads.set(id, upload);
      return upload;
    }

    /** Appends the request body to the upload, never past its declared size. */
    async function appendBody(upload: Upload, body: Readable): Promise<void> {
      const out = createWriteStream(upload.path, { flags: 'a', mode: 0o600 });
      let written = 0;
      const limit = upload.size - upload.offset;
      let stall: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(stall);
        stall = setTimeout(() => body.destroy(new ApiError(408, 'AG_UPLOAD_STALLED', `no data for ${UPLOAD_STALL_MS / 1000} s`, 'resume from the offset GET /api/v1/uploads/:id gives')), UPLOAD_STALL_MS);
      };
      arm();
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            arm();
            upload.touched = Date.now();
            written += chunk.length;
            if (written > limit) throw new ApiError(413, 'AG_UPLOAD_TOO_LARGE', `the body runs past the upload's size of ${upload.size} bytes`);
            yield chunk;
          }
        },
        out,
      ).finally(() => clearTimeout(stall)).catch(async (err: unknown) => {
        // Keep what arrived whole: the client resumes from the offset GET /uploads/:id gives.
        upload.offset = (await stat(upload.path).catch(() => ({ size: upload.offset }))).size;
        if (upload.offset > upload.size) {
          upload.offset = 0;
          await rm(upload.path, { force: true });
        }
        throw err;
      });
      upload.offset += written;
    }
  }, { prefix: '/api/v1' });
}

/** An error with its HTTP status, turned into `{code, message, hint}` by the error handler. */
export class ApiError extends AirgapError {
  constructor(readonly statusCode: number, code: string, message: string, hint?: string) {
    super(code, message, hint ? { hint } : {});
  }
}

