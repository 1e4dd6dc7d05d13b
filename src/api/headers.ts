/**
 * Response headers every answer carries, errors, 404s and redirects included:
 * `X-Content-Type-Options: nosniff`; `Cache-Control: no-store` on everything except a
 * successful /health (links, manifests, listings and errors are per-request and must not be
 * cached); and, for the status page at `/` (and harmless on JSON), a Content-Security-Policy
 * that allows only this origin's own script, style and requests (no inline script or style),
 * `X-Frame-Options: DENY` and no Referer (a signed link is never sent on as one).
 */
import type { MiddlewareHandler } from "hono";

export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const CACHEABLE_PATHS: ReadonlySet<string> = new Set(["/health"]);

export function responseHeaders(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Content-Security-Policy", CONTENT_SECURITY_POLICY);
    c.header("X-Frame-Options", "DENY");
    c.header("Referrer-Policy", "no-referrer");
    if (c.res.status >= 400 || !CACHEABLE_PATHS.has(new URL(c.req.url).pathname)) c.header("Cache-Control", "no-store");
  };
}
