/**
 * SDK and network errors → BackupErrors a user can act on. The SDK's own messages can be
 * terse ("UnknownError") or misleading (a 403 on a bucket that does not exist); say which
 * setting to look at instead. Never includes credentials.
 */
import type { S3Config } from "../config.js";
import { BackupError } from "../errors.js";

const AUTH_ERRORS = new Set([
  "AccessDenied",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "InvalidToken",
  "ExpiredToken",
  "AuthorizationHeaderMalformed",
  "InvalidSignature",
  "Forbidden",
]);
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "EPIPE", "UND_ERR_SOCKET"]);

interface SdkLikeError {
  name?: string;
  code?: string;
  message?: string;
  cause?: unknown;
  $metadata?: { httpStatusCode?: number };
  errors?: unknown[];
}

function networkCode(err: unknown, depth = 0): string | undefined {
  if (!err || typeof err !== "object" || depth > 4) return undefined;
  const e = err as SdkLikeError;
  if (e.code && NETWORK_CODES.has(e.code)) return e.code;
  if (e.name === "TimeoutError") return "ETIMEDOUT";
  for (const inner of [e.cause, ...(Array.isArray(e.errors) ? e.errors : [])]) {
    const found = networkCode(inner, depth + 1);
    if (found) return found;
  }
  return undefined;
}

export function storeError(err: unknown, action: string, config: S3Config): BackupError {
  if (err instanceof BackupError) return err;
  const e = (err ?? {}) as SdkLikeError;
  const name = e.name ?? "Error";
  const status = e.$metadata?.httpStatusCode;
  const endpoint = config.endpoint ?? `AWS S3 (${config.region})`;
  const detail = e.message && e.message !== name && e.message !== "UnknownError" ? `: ${e.message}` : "";

  if (name === "NoSuchBucket") {
    return new BackupError(
      "STORE_BUCKET_MISSING",
      `${action} failed: bucket "${config.bucket}" does not exist at ${endpoint}. Create it or fix S3_BUCKET.`,
      502,
      { cause: err },
    );
  }
  if (AUTH_ERRORS.has(name) || status === 403 || status === 401) {
    return new BackupError(
      "STORE_AUTH",
      `${action} failed: ${endpoint} refused the request (${name}, HTTP ${status ?? "?"}). Check S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_REGION and the key's permissions on bucket "${config.bucket}".`,
      502,
      { cause: err },
    );
  }
  const net = networkCode(err);
  if (net) {
    return new BackupError("STORE_UNREACHABLE", `${action} failed: cannot reach ${endpoint} (${net}). Check S3_ENDPOINT and the network.`, 503, {
      cause: err,
    });
  }
  return new BackupError("STORE_ERROR", `${action} failed: ${name}${status ? ` (HTTP ${status})` : ""}${detail}`, 502, { cause: err });
}
