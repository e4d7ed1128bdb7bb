/**
 * Response headers that keep the HTTPS app's answers from being framed, sniffed, cached
 * or run as the console (OWASP Secure Headers; CSP Level 3; RFC 6797 for HSTS):
 *
 *   every answer   X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer,
 *                  X-Frame-Options: DENY, HSTS when the app is HTTPS
 *   the console    a CSP that allows only its own files (web/ has no inline script or style)
 *   /api/v1/…      Cache-Control: no-store (sessions, CSRF tokens, revealed passwords)
 *   /repo/…        Content-Security-Policy: sandbox: a bundle's HTML keeps its type but
 *                  runs no script and gets an opaque origin (docs/adr/0006-repository-origin.md)
 */
import type { FastifyInstance } from 'fastify';

/** The console's policy: its own script, style, API and event stream; no frames, forms or plugins elsewhere. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The policy of repository files and listings: a sandbox (no script, no forms, an opaque
 * origin, so no access to the console's origin), never framed.
 */
export const REPOSITORY_CSP = "sandbox; frame-ancestors 'none'";

/** One year: RFC 6797 leaves it to the site; browsers ignore HSTS on IP addresses. */
const HSTS = 'max-age=31536000';

/**
 * Adds an onSend hook to `app` (call it before registering routes) that sets the headers
 * above by path; `https` adds Strict-Transport-Security.
 */
export function registerSecurityHeaders(app: FastifyInstance, options: { https: boolean }): void {
  app.addHook('onSend', async (request, reply) => {
    const path = request.url.split('?')[0]!;
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    if (options.https) reply.header('strict-transport-security', HSTS);
    if (path === '/repo' || path.startsWith('/repo/')) {
      reply.header('content-security-policy', REPOSITORY_CSP);
    } else {
      reply.header('content-security-policy', CONSOLE_CSP);
    }
    if (path.startsWith('/api/')) reply.header('cache-control', 'no-store');
  });
}
