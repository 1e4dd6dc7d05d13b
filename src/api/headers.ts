/**
 * Response headers every answer carries, errors, 404s and redirects included:
 * `X-Content-Type-Options: nosniff`, and `Cache-Control: no-store` on everything except a
 * successful /health (links, manifests, listings and errors are per-request and must not be
 * cached).
 */
import type { MiddlewareHandler } from "hono";

export const CACHEABLE_PATHS: ReadonlySet<string> = new Set(["/health"]);

export function responseHeaders(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    c.header("X-Content-Type-Options", "nosniff");
    if (c.res.status >= 400 || !CACHEABLE_PATHS.has(new URL(c.req.url).pathname)) c.header("Cache-Control", "no-store");
  };
}
