/**
 * How the HTTP API fails: one JSON shape for every error,
 *
 *   {"error":{"code":"…","message":"…"}}
 *
 * `HttpError` is the API's HTTPException: a BackupError that may also carry response headers
 * (WWW-Authenticate) and extra string fields for the error object (runningSince). The
 * `onError` handler maps BackupErrors to their own status and code, zod validation failures
 * to 400 BAD_REQUEST, hono's HTTPExceptions to their status, and anything else to a generic
 * 500 INTERNAL; the real message of a 5xx goes to the log, never a stack to the client.
 */
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";
import { BackupError, type ErrorCode } from "../errors.js";
import type { Logger } from "../log.js";

export interface ErrorBody {
  error: { code: string; message: string } & Record<string, string>;
}

export class HttpError extends BackupError {
  readonly headers: Readonly<Record<string, string>>;
  readonly details: Readonly<Record<string, string>>;

  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    options: { headers?: Record<string, string>; details?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(code, message, status, options.cause === undefined ? undefined : { cause: options.cause });
    this.headers = options.headers ?? {};
    this.details = options.details ?? {};
  }
}

const GENERIC_500 = "internal error; the server log has the details.";

/** A BackupError with an HTTP-error status whose message is meant for the client. */
function isClientFacing(err: unknown): err is BackupError {
  return err instanceof BackupError && err.code !== "INTERNAL" && err.status >= 400 && err.status <= 599;
}

function codeForStatus(status: number): ErrorCode {
  if (status === 401) return "UNAUTHORIZED";
  if (status === 404) return "NOT_FOUND";
  if (status === 413) return "BODY_TOO_LARGE";
  return status >= 500 ? "INTERNAL" : "BAD_REQUEST";
}

export function errorJson(c: Context, status: number, code: string, message: string, extra: { headers?: Readonly<Record<string, string>>; details?: Readonly<Record<string, string>> } = {}): Response {
  const body: ErrorBody = { error: { ...extra.details, code, message } };
  return c.json(body, status as ContentfulStatusCode, { ...extra.headers });
}

/** Only the message: stacks stay out of logs and responses alike. */
function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function createErrorHandler(logger: Logger): ErrorHandler {
  return (err, c) => {
    const where = { method: c.req.method, path: new URL(c.req.url).pathname };
    if (isClientFacing(err)) {
      if (err.status >= 500) logger.error("request failed", { ...where, status: err.status, code: err.code, error: err.message });
      const extra = err instanceof HttpError ? { headers: err.headers, details: err.details } : {};
      return errorJson(c, err.status, err.code, err.message, extra);
    }
    if (err instanceof HTTPException && err.status < 500) {
      return errorJson(c, err.status, codeForStatus(err.status), err.message || "the request was rejected.");
    }
    logger.error("request failed", { ...where, status: 500, code: "INTERNAL", error: messageOf(err) });
    return errorJson(c, 500, "INTERNAL", GENERIC_500);
  };
}

export const notFoundHandler: NotFoundHandler = (c) => {
  const path = new URL(c.req.url).pathname;
  const shown = path.length > 120 ? `${path.slice(0, 120)}…` : path;
  return errorJson(c, 404, "NOT_FOUND", `no route ${c.req.method} ${shown}; see GET /openapi.json for the routes.`);
};

const TARGETS: Record<string, string> = { query: "query parameter", param: "path parameter", header: "header", cookie: "cookie", json: "JSON body field", form: "form field" };

/** The `defaultHook` of the OpenAPIHono app: a failed zod validation becomes 400 BAD_REQUEST naming the parameter. */
export function validationHook(result: { target: string; success: true; data: unknown } | { target: string; success: false; error: ZodError }): void {
  if (result.success) return;
  const issue = result.error.issues[0];
  const name = issue?.path.map(String).join(".") || "(value)";
  const what = TARGETS[result.target] ?? result.target;
  throw new HttpError(400, "BAD_REQUEST", `invalid ${what} "${name}": ${issue?.message ?? "invalid value"}`);
}
