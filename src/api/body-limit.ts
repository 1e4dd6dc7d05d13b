/**
 * Request bodies are capped: no route takes a body (POST /backups starts a backup from the
 * configuration alone), so anything over MAX_BODY_BYTES is refused with 413 before a handler
 * runs — by Content-Length when given, otherwise by counting the streamed bytes.
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit as honoBodyLimit } from "hono/body-limit";
import { HttpError } from "./errors.js";

export const MAX_BODY_BYTES = 1024;

export function bodyLimit(maxSize = MAX_BODY_BYTES): MiddlewareHandler {
  return honoBodyLimit({
    maxSize,
    onError: () => {
      throw new HttpError(413, "BODY_TOO_LARGE", `request bodies are limited to ${maxSize} bytes; this API takes no request body.`);
    },
  });
}
