/**
 * CORS for CORS_ORIGINS, on hono's own middleware. Only what the API needs: GET, POST and
 * DELETE (DELETE /backups/{file}, so that an admin page on a listed origin can remove a backup),
 * the two auth headers, and no cookies (credentials are never allowed: the API key travels
 * in a header the page sets, so a page that is not allowed cannot read any answer).
 */
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";

export function corsFor(origins: readonly string[]): MiddlewareHandler {
  const any = origins.includes("*");
  // Compared exactly (scheme, host, port), never by prefix or pattern.
  const allowed = new Set(origins.map((o) => o.replace(/\/$/, "")));
  return cors({
    origin: any ? "*" : (origin) => (allowed.has(origin) ? origin : null),
    allowMethods: ["GET", "POST", "DELETE"],
    allowHeaders: ["Authorization", "X-API-Key", "Content-Type"],
    exposeHeaders: ["Location", "WWW-Authenticate"],
    credentials: false,
    maxAge: 600,
  });
}
