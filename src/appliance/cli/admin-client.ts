/**
 * The CLI side of the local admin API: HTTP over the daemon's unix socket
 * (`<state-dir>/admin.sock`). Errors become AirgapError with what to do next.
 */
import { request } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { AirgapError, asErrorCode } from '../../kit/errors.js';
import { stateLayout } from '../config/state-layout.js';
import { pidAlive } from '../../kit/pids.js';

export class DaemonError extends AirgapError {}


function once(socketPath: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      { socketPath, method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as unknown) : null });
          } catch (cause) {
            reject(new DaemonError('AG_DAEMON_PROTOCOL', `the daemon sent an answer that is not JSON (status ${res.statusCode})`, { cause }));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export interface AdminClientOptions {
  /** Told once when the daemon is still starting and the client waits for it. */
  onWait?: (message: string) => void;
  /** How long to wait for a starting daemon, ms (default 90 s: the registries start first). */
  waitMs?: number;
}

/**
 * Calls the admin API of the daemon that owns `stateDir` and returns its JSON body.
 * Waits while a live daemon is still starting (its pid file is there, the socket not
 * yet). Throws DaemonError AG_DAEMON_DOWN when no daemon runs, AG_DAEMON_DENIED when the
 * socket is not ours to use, and the daemon's own error (code, message, hint) otherwise.
 */
export async function callAdmin<T>(stateDir: string, method: 'GET' | 'POST', path: string, body?: unknown, options: AdminClientOptions = {}): Promise<T> {
  const layout = stateLayout(stateDir);
  const deadline = Date.now() + (options.waitMs ?? 90_000);
  let told = false;
  for (;;) {
    try {
      const { status, json } = await once(layout.adminSocket, method, path, body);
      if (status >= 200 && status < 300) return json as T;
      const err = (json ?? {}) as { code?: string; message?: string; hint?: string };
      throw new DaemonError(asErrorCode(err.code, 'AG_DAEMON_ERROR'), err.message ?? `the daemon answered ${status}`, err.hint ? { hint: err.hint } : {});
    } catch (err) {
      if (err instanceof AirgapError) throw err;
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EACCES' || e.code === 'EPERM') {
        throw new DaemonError('AG_DAEMON_DENIED', `permission denied on the admin socket ${layout.adminSocket}`, { hint: 'run the command as the daemon\'s user (sudo)' });
      }
      if (e.code !== 'ENOENT' && e.code !== 'ECONNREFUSED') throw err;
      const pid = Number((await readFile(layout.daemonPid, 'utf8').catch(() => '')).trim());
      const starting = Number.isInteger(pid) && pid > 1 && pidAlive(pid);
      if (!starting || Date.now() > deadline) {
        const exists = await stat(stateDir).then(() => true, () => false);
        throw new DaemonError('AG_DAEMON_DOWN', starting ? `the airgap daemon (pid ${pid}) did not finish starting` : `the airgap daemon is not running (no answer on ${layout.adminSocket})`, {
          hint: exists
            ? `start it: airgap serve --state-dir ${stateDir} (on the appliance: sudo systemctl start airgap)`
            : `no state dir at ${stateDir}: start the daemon with 'airgap serve', or pass --state-dir / AIRGAP_STATE_DIR of a running one`,
        });
      }
      if (!told) options.onWait?.(`waiting for the airgap daemon (pid ${pid}) to finish starting…`);
      told = true;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * GET `path` on the admin socket and calls `onLine` with each JSON line of the NDJSON
 * answer; resolves when the daemon ends it. Rejects with the raw socket error when the
 * connection fails or drops (the caller may reconnect), DaemonError on an HTTP error, and
 * the abort error at once when `signal` fires.
 */
export function streamAdmin(stateDir: string, path: string, onLine: (value: unknown) => void, signal?: AbortSignal): Promise<void> {
  const layout = stateLayout(stateDir);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: layout.adminSocket, method: 'GET', path, ...(signal ? { signal } : {}) }, (res) => {
      let buffered = '';
      let failed = false;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (!line.trim()) continue;
          try {
            const value = JSON.parse(line) as { code?: string; message?: string; hint?: string };
            if ((res.statusCode ?? 0) >= 400) {
              failed = true;
              reject(new DaemonError(asErrorCode(value.code, 'AG_DAEMON_ERROR'), value.message ?? `the daemon answered ${res.statusCode}`, value.hint ? { hint: value.hint } : {}));
            } else onLine(value);
          } catch (cause) {
            failed = true;
            reject(cause instanceof AirgapError ? cause : new DaemonError('AG_DAEMON_PROTOCOL', 'the daemon sent a line that is not JSON', { cause }));
          }
        }
      });
      res.on('end', () => {
        if (failed) return;
        if (buffered.trim()) {
          try {
            onLine(JSON.parse(buffered));
          } catch {
            /* a cut line: the connection dropped */
          }
        }
        if ((res.statusCode ?? 0) >= 400) reject(new DaemonError('AG_DAEMON_ERROR', `the daemon answered ${res.statusCode}`));
        else resolve();
      });
      res.on('error', reject);
      res.on('aborted', () => reject(Object.assign(new Error('the daemon closed the connection'), { code: 'ECONNRESET' })));
    });
    req.on('error', reject);
    req.end();
  });
}
