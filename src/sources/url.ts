/**
 * A database served over HTTP(S): GET with the configured headers, following redirects.
 * Web-standard fetch only, so it runs on Node and Workers alike. URLs and headers often
 * carry tokens: messages show the redacted URL and never a header value or query string.
 */
import { redactUrl } from "../config.js";
import { BackupError, describeCause } from "../errors.js";
import { redact } from "../log.js";
import { guardStream, readStream, rejectNonSqlite, type StreamProblem } from "./read-stream.js";
import type { OpenOptions, ReadOptions, Source, SourceImage, SourceStream } from "./source.js";

const HEADERS_HINT = 'Check the credentials sent with BACKUP_SOURCE_HEADERS (e.g. {"Authorization":"Bearer …"}) or the token in BACKUP_SOURCE.';

export function urlSource(fetchFn: typeof fetch, url: string, headers: Record<string, string>): Source {
  const origin = redactUrl(url);
  const scrub = scrubber(url, headers);

  function unreadable(message: string, cause?: unknown): BackupError {
    // A cause whose text holds a secret (fetch quotes invalid header values) is not kept either.
    const safeCause = cause === undefined || scrub(describeCause(cause)) !== describeCause(cause) ? undefined : { cause };
    return new BackupError("SOURCE_UNREADABLE", scrub(`${origin} ${message}`), 502, safeCause);
  }

  function streamError(p: StreamProblem, maxBytes: number): Error {
    switch (p.kind) {
      case "too-large":
        return new BackupError(
          "SOURCE_TOO_LARGE",
          p.announced
            ? `${origin} is ${p.bytes} bytes (Content-Length), over MAX_BYTES (${p.limit}).`
            : `${origin} sent more than MAX_BYTES (${maxBytes}) bytes; the download was stopped.`,
          413,
        );
      case "wrong-length":
        return unreadable(`response body was ${p.complete ? "" : "at least "}${p.bytes} bytes but Content-Length said ${p.expected}.`);
      case "failed":
        if (p.expected !== undefined && p.bytes < p.expected) {
          return unreadable(
            `response body was ${p.bytes} bytes but Content-Length said ${p.expected}: the connection ended early (${describeCause(p.cause)}).`,
            p.cause,
          );
        }
        return unreadable(`could not be read after ${p.bytes} bytes: ${describeCause(p.cause)}.`, p.cause);
    }
  }

  /** GET the URL and check the answer before any body byte is read; undefined body = empty response. */
  async function respond(): Promise<{ body: ReadableStream<Uint8Array> | null; expectedBytes: number | undefined; controller: AbortController }> {
    const controller = new AbortController();
    let response: Response;
    try {
      response = await fetchFollowingRedirects(fetchFn, url, headers, controller.signal);
    } catch (err) {
      if (err instanceof BackupError) throw err;
      throw unreadable(`cannot be fetched: ${describeCause(err)}.`, err);
    }
    const discard = () => {
      void response.body?.cancel().catch(() => undefined);
      controller.abort();
    };

    if (!response.ok) {
      discard();
      const status = `answered HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`;
      if (response.status === 404 || response.status === 410) {
        throw new BackupError("SOURCE_NOT_FOUND", scrub(`${origin} ${status}: there is no database at this URL (BACKUP_SOURCE).`), 502);
      }
      if (response.status === 401 || response.status === 403) {
        throw unreadable(`${status}: the server refused the request. ${HEADERS_HINT}`);
      }
      throw unreadable(`${status}.`);
    }

    const contentType = response.headers.get("content-type") ?? "";
    if (/^\s*text\/html\b/i.test(contentType)) {
      discard();
      throw new BackupError(
        "NOT_SQLITE",
        `${origin} is not a SQLite database: the URL returned an HTML page, not a database (Content-Type ${contentType.split(";")[0]!.trim()}). Check the URL, and BACKUP_SOURCE_HEADERS if the page is a login form.`,
        422,
      );
    }

    const expectedBytes = announcedLength(response.headers);
    if (!response.body && expectedBytes) throw unreadable(`response had no body but Content-Length said ${expectedBytes}.`);
    return { body: response.body, expectedBytes, controller };
  }

  return {
    origin,
    async read({ maxBytes, onProgress }: ReadOptions): Promise<SourceImage> {
      const { body, expectedBytes, controller } = await respond();
      if (!body) return { bytes: new Uint8Array(0), origin };
      try {
        const bytes = await readStream(body, {
          maxBytes,
          ...(expectedBytes !== undefined ? { expectedBytes } : {}),
          ...(onProgress ? { onProgress } : {}),
          checkHead: rejectNonSqlite(origin),
          problem: (p) => streamError(p, maxBytes),
        });
        return { bytes, origin };
      } catch (err) {
        controller.abort();
        throw err;
      }
    },
    async open({ maxBytes }: OpenOptions): Promise<SourceStream> {
      const { body, expectedBytes } = await respond();
      const stream = body
        ? guardStream(body, {
            maxBytes,
            ...(expectedBytes !== undefined ? { expectedBytes } : {}),
            checkHead: rejectNonSqlite(origin),
            problem: (p) => streamError(p, maxBytes),
          })
        : new ReadableStream<Uint8Array>({ start: (c) => c.close() });
      return { stream, ...(expectedBytes !== undefined ? { bytes: expectedBytes } : {}), settled: async () => ({}) };
    },
  };
}

const MAX_REDIRECTS = 5;

/**
 * Follow redirects by hand: fetch's own "follow" drops Authorization on a cross-origin hop
 * but still sends custom headers such as X-API-Key to the new host. BACKUP_SOURCE_HEADERS
 * are sent only to the origin of BACKUP_SOURCE (a redirect to a presigned URL elsewhere
 * needs no credentials of ours).
 */
async function fetchFollowingRedirects(fetchFn: typeof fetch, url: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
  const home = new URL(url).origin;
  let current = url;
  for (let hop = 0; ; hop++) {
    const sameOrigin = new URL(current).origin === home;
    const response = await fetchFn(current, { method: "GET", headers: sameOrigin ? headers : {}, redirect: "manual", signal });
    const location = response.headers.get("location");
    if (response.status < 300 || response.status > 399 || !location) return response;
    void response.body?.cancel().catch(() => undefined);
    if (hop >= MAX_REDIRECTS) {
      throw new BackupError("SOURCE_UNREADABLE", `${redactUrl(url)} redirected more than ${MAX_REDIRECTS} times.`, 502);
    }
    current = new URL(location, current).toString();
  }
}

/**
 * The body's length, if the response says it. With a Content-Encoding, fetch hands over the
 * decoded body while Content-Length counts the encoded bytes: then the length is unknown.
 */
function announcedLength(headers: Headers): number | undefined {
  const encoding = headers.get("content-encoding");
  if (encoding && encoding.trim().toLowerCase() !== "identity") return undefined;
  const raw = headers.get("content-length")?.trim();
  if (!raw || !/^\d+$/.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Remove every secret the URL or headers could leak into a message (query values, userinfo, header values). */
function scrubber(url: string, headers: Record<string, string>): (text: string) => string {
  // Trimmed too: fetch normalizes header values before quoting them in its errors.
  const secrets = new Set<string>(Object.values(headers).flatMap((v) => [v, v.trim()]));
  try {
    const u = new URL(url);
    if (u.search.length > 1) secrets.add(u.search.slice(1));
    for (const [, value] of u.searchParams) {
      secrets.add(value);
      secrets.add(encodeURIComponent(value));
    }
    secrets.add(u.username);
    secrets.add(u.password);
    secrets.add(decodeURIComponent(u.password));
  } catch {
    // An invalid URL fails in fetch; its text is replaced as a whole below.
  }
  const redactedUrl = redactUrl(url);
  return (text) => redact(text.split(url).join(redactedUrl), [...secrets]);
}
