/**
 * One JSON log line per request: method, path (without the query string, which may carry
 * tokens), status and duration. Never headers, never bodies.
 */
import type { MiddlewareHandler } from "hono";
import type { Logger } from "../log.js";

const MAX_PATH = 256;

export function accessLog(logger: Logger): MiddlewareHandler {
  return async (c, next) => {
    const started = Date.now();
    try {
      await next();
    } finally {
      const raw = new URL(c.req.url).pathname;
      const path = raw.length > MAX_PATH ? `${raw.slice(0, MAX_PATH)}…` : raw;
      logger.info("request", { method: c.req.method, path, status: c.res.status, ms: Date.now() - started });
    }
  };
}
