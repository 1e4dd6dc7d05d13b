/**
 * API-key authentication, in the manner of hono's bearerAuth: `Authorization: Bearer <key>`
 * or `X-API-Key: <key>`. Keys are compared in constant time: both sides are hashed with
 * SHA-256 (Web Crypto, so it runs on Workers and Node alike) and the digests compared byte by
 * byte with an XOR accumulator, so neither the position of the first difference nor the
 * length of the key shows in the timing.
 *
 * No API key configured → 403 API_DISABLED for every protected route, whatever the request
 * carries. Missing, malformed or wrong credentials → 401 UNAUTHORIZED with WWW-Authenticate.
 */
import type { Env, MiddlewareHandler } from "hono";
import { HttpError } from "./errors.js";

export const AUTH_REALM = "sqlite-edge-backup";
export const API_KEY_HEADER = "X-API-Key";

const encoder = new TextEncoder();

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/** Equal digests of equal length, without an early exit. */
function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ (b[i] ?? 0);
  return diff === 0;
}

/** Constant-time string equality (for secrets). */
export async function timingSafeEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([sha256(a), sha256(b)]);
  return digestsEqual(da, db);
}

interface Presented {
  /** Credentials offered by the request (Bearer token and/or X-API-Key). */
  keys: string[];
  /** An Authorization header with another scheme (Basic, Digest, …). */
  otherScheme: boolean;
}

function presented(authorization: string | undefined, apiKeyHeader: string | undefined): Presented {
  const keys: string[] = [];
  let otherScheme = false;
  if (authorization !== undefined && authorization.trim() !== "") {
    const m = /^Bearer[ \t]+(.*)$/i.exec(authorization.trim());
    const token = m?.[1]?.trim();
    if (token) keys.push(token);
    else otherScheme = true;
  }
  const headerKey = apiKeyHeader?.trim();
  if (headerKey) keys.push(headerKey);
  return { keys, otherScheme };
}

function unauthorized(message: string, error?: "invalid_request" | "invalid_token"): HttpError {
  const challenge = `Bearer realm="${AUTH_REALM}"${error ? `, error="${error}"` : ""}`;
  return new HttpError(401, "UNAUTHORIZED", message, { headers: { "WWW-Authenticate": challenge } });
}

/**
 * Middleware for the protected routes. `apiKey` is the configured API_KEY; undefined disables
 * the API. Never logs or echoes what the request presented.
 */
export function requireApiKey(apiKey: string | undefined): MiddlewareHandler<Env> {
  const expected = apiKey === undefined ? undefined : sha256(apiKey);
  return async (c, next) => {
    if (expected === undefined) {
      throw new HttpError(403, "API_DISABLED", "the HTTP API is disabled because no API key is configured: set API_KEY (at least 16 characters) and restart to enable it.");
    }
    const { keys, otherScheme } = presented(c.req.header("Authorization"), c.req.header(API_KEY_HEADER));
    if (keys.length === 0) {
      throw otherScheme
        ? unauthorized(`unsupported Authorization scheme: send "Authorization: Bearer <API_KEY>" or "${API_KEY_HEADER}: <API_KEY>".`, "invalid_request")
        : unauthorized(`missing API key: send "Authorization: Bearer <API_KEY>" or "${API_KEY_HEADER}: <API_KEY>".`);
    }
    // Hash every candidate, so the time taken does not depend on which one matched.
    const want = await expected;
    const digests = await Promise.all(keys.map(sha256));
    let ok = false;
    for (const d of digests) ok = digestsEqual(d, want) || ok;
    if (!ok) throw unauthorized("invalid API key.", "invalid_token");
    await next();
  };
}
