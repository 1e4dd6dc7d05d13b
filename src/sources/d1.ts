/**
 * A Cloudflare D1 database (BACKUP_SOURCE=d1://ACCOUNT_ID/DATABASE_ID, CLOUDFLARE_API_TOKEN).
 * D1 has no file to read: its REST API exports SQL. The export is started and polled as
 * wrangler's `d1 export --remote` does (POST …/export with `output_format: "polling"`, then
 * the same POST with `current_bookmark` until `status` is "complete"), the dump is downloaded
 * from the signed URL, and its statements are loaded into a fresh sql.js database as they
 * arrive. `db.export()` then gives a real SQLite image, which goes through the same check,
 * gzip, upload, verify and retention as any source; the export's bookmark goes into the
 * backup's metadata (`d1-bookmark`).
 *
 * The image is built in memory, so a D1 source has a size limit per runtime (`maxDumpBytes`):
 * a dump over it is refused before it is loaded (Content-Length), or as soon as it passes the
 * limit while streaming — never a half image.
 */
import { isHttpUrl, redactUrl } from "../config.js";
import { BackupError, describeCause } from "../errors.js";
import { redact } from "../log.js";
import type { SqlJsStatic } from "sql.js";
import { createStatementSplitter } from "../sqlite/sql-split.js";
import { READ_CHUNK_BYTES, type OpenOptions, type ReadOptions, type Source, type SourceImage, type SourceStream } from "./source.js";

export const CLOUDFLARE_API_BASE_URL = "https://api.cloudflare.com/client/v4";

export interface D1SourceOptions {
  accountId: string;
  databaseId: string;
  token: string;
  /** CLOUDFLARE_API_BASE_URL (default: Cloudflare's); tests point it at a local server. */
  apiBase?: string;
  /** Largest SQL dump loaded (bytes): the SQL, sql.js's copy and the exported image coexist. */
  maxDumpBytes: number;
  /** How long the export may take before the backup gives up (default 15 minutes). */
  exportTimeoutMs?: number;
  /**
   * Polls are at least this far apart (default 1 s). wrangler polls back to back; a floor keeps
   * an API that answers at once from using up a Worker's subrequests (10 000 per invocation).
   */
  minPollIntervalMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export const D1_EXPORT_TIMEOUT_MS = 15 * 60 * 1000;
export const D1_MIN_POLL_INTERVAL_MS = 1000;

/** The export API's answer inside Cloudflare's envelope (`result`), as wrangler reads it. */
interface ExportResult {
  success?: boolean;
  status?: string;
  at_bookmark?: string;
  error?: string;
  messages?: unknown[];
  result?: { filename?: string; signed_url?: string };
}

interface Envelope {
  success?: boolean;
  errors?: { code?: number; message?: string }[];
  result?: ExportResult | null;
}

/** Statements are run in batches of about this much SQL: fewer calls into sql.js, little held. */
const EXEC_BATCH_CHARS = 1024 * 1024;

/** Bookmarks look like `00000085-0000024c-00004c6d-8e61117bf38d7adb71b934ebbf891683`; anything else is not stored in metadata. */
const BOOKMARK_PATTERN = /^[A-Za-z0-9._-]{1,200}$/;

export function d1Source(fetchFn: typeof fetch, sqlite: SqlJsStatic, options: D1SourceOptions): Source {
  const { accountId, databaseId, token } = options;
  const origin = `d1://${accountId}/${databaseId}`;
  const base = (options.apiBase ?? CLOUDFLARE_API_BASE_URL).replace(/\/+$/, "");
  const endpoint = `${base}/accounts/${encodeURIComponent(accountId)}/d1/database/${encodeURIComponent(databaseId)}/export`;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const timeoutMs = options.exportTimeoutMs ?? D1_EXPORT_TIMEOUT_MS;
  const scrub = (text: string) => redact(text, [token]);

  function unreadable(message: string): BackupError {
    return new BackupError("SOURCE_UNREADABLE", scrub(`${origin}: ${message}`), 502);
  }

  /** One POST of the export protocol; a refusal becomes an error that says what to fix. */
  async function post(bookmark: string | undefined): Promise<ExportResult> {
    let response: Response;
    try {
      response = await fetchFn(endpoint, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ output_format: "polling", ...(bookmark ? { current_bookmark: bookmark } : {}) }),
      });
    } catch (err) {
      throw unreadable(`the Cloudflare API (${redactUrl(base)}) cannot be reached: ${describeCause(err)}.`);
    }
    const text = await response.text().catch(() => "");
    let envelope: Envelope | undefined;
    try {
      envelope = JSON.parse(text) as Envelope;
    } catch {
      envelope = undefined;
    }
    const apiErrors = (envelope?.errors ?? []).map((e) => `${e.message ?? "error"}${e.code ? ` (code ${e.code})` : ""}`).join("; ");
    const said = `HTTP ${response.status}${apiErrors ? `: ${apiErrors}` : ""}`;
    if (response.status === 401 || response.status === 403) {
      throw unreadable(`the Cloudflare API refused CLOUDFLARE_API_TOKEN (${said}). Use an API token of account ${accountId} with its D1 permission (Account · D1).`);
    }
    if (response.status === 404) {
      throw new BackupError("SOURCE_NOT_FOUND", scrub(`${origin}: there is no D1 database ${databaseId} in account ${accountId} (${said}). Check BACKUP_SOURCE (d1://ACCOUNT_ID/DATABASE_ID, the database's UUID from \`wrangler d1 list\`).`), 502);
    }
    if (!response.ok || !envelope || envelope.success === false || !envelope.result) {
      throw unreadable(`the D1 export request failed (${envelope ? said : `HTTP ${response.status}, not a JSON answer`}).`);
    }
    return envelope.result;
  }

  /** Start the export and poll it to the end: the signed URL of the dump and the bookmark it was taken at. */
  async function exportDump(): Promise<{ url: string; bookmark: string | undefined }> {
    const started = now();
    const floor = options.minPollIntervalMs ?? D1_MIN_POLL_INTERVAL_MS;
    let bookmark: string | undefined;
    for (let polls = 0; ; polls++) {
      const sent = now();
      const r = await post(bookmark);
      if (r.at_bookmark) bookmark = r.at_bookmark;
      if (r.status === "error" || r.success === false) {
        throw unreadable(`the D1 export failed: ${r.error ?? "no reason given"}.`);
      }
      if (r.status === "complete") {
        const url = r.result?.signed_url;
        if (!url || !isHttpUrl(url)) throw unreadable("the D1 export completed without an http(s) signed URL to download it from.");
        return { url, bookmark };
      }
      if (!bookmark) throw unreadable(`the D1 export answered status ${JSON.stringify(r.status ?? null)} without a bookmark to poll with.`);
      if (now() - started >= timeoutMs) {
        throw unreadable(`the D1 export did not finish within ${Math.round(timeoutMs / 1000)} s (${polls + 1} polls; D1 does not serve queries while an export runs, and one that is no longer polled is cancelled).`);
      }
      const wait = floor - (now() - sent);
      if (wait > 0) await sleep(wait);
    }
  }

  function tooLarge(bytes: number, announced: boolean): BackupError {
    return new BackupError(
      "SOURCE_TOO_LARGE",
      `${origin}: the D1 export is ${announced ? "" : "more than "}${bytes} bytes of SQL, over the ${options.maxDumpBytes} bytes a D1 backup can load in this runtime (the SQL is loaded into an in-memory database). Back it up with the CLI on Node, which allows more.`,
      413,
    );
  }

  /** Download the dump and load it statement by statement into a new database; its image. */
  async function build(maxBytes: number): Promise<SourceImage> {
    const { url, bookmark } = await exportDump();
    let response: Response;
    try {
      // The signed URL is its own credential: no Authorization header goes with it.
      response = await fetchFn(url, { method: "GET" });
    } catch (err) {
      throw unreadable(`the D1 export's dump (${redactUrl(url)}) cannot be downloaded: ${describeCause(err)}.`);
    }
    if (!response.ok || !response.body) {
      void response.body?.cancel().catch(() => undefined);
      throw unreadable(`downloading the D1 export's dump (${redactUrl(url)}) answered HTTP ${response.status}.`);
    }
    const length = Number(response.headers.get("content-length") ?? NaN);
    if (Number.isSafeInteger(length) && length > options.maxDumpBytes) {
      void response.body.cancel().catch(() => undefined);
      throw tooLarge(length, true);
    }

    const db = new sqlite.Database();
    try {
      // The dump's rows come in table order, not in foreign-key order; D1 checks nothing here either.
      db.run("PRAGMA foreign_keys=OFF");
      db.run("BEGIN");
      const splitter = createStatementSplitter();
      const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
      let batch = "";
      let statements = 0;
      let received = 0;
      const flush = () => {
        if (!batch) return;
        try {
          db.exec(batch);
        } catch (err) {
          throw unreadable(`the D1 export's SQL did not load (statements up to #${statements}): ${describeCause(err)}.`);
        }
        batch = "";
      };
      const take = (list: string[]) => {
        for (const s of list) {
          // A transaction of the dump's own (a sqlite3 .dump) would end ours: the load is one transaction already.
          if (/^(BEGIN|COMMIT|END|ROLLBACK)\b/i.test(s)) continue;
          batch += `${s}\n`;
          statements++;
          if (batch.length >= EXEC_BATCH_CHARS) flush();
        }
      };
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          received += value.byteLength;
          if (received > options.maxDumpBytes) throw tooLarge(options.maxDumpBytes, false);
          take(splitter.push(decodeOrFail(decoder, value, true)));
        }
        take(splitter.push(decodeOrFail(decoder, new Uint8Array(0), false)));
      } catch (err) {
        await reader.cancel().catch(() => undefined);
        if (err instanceof BackupError) throw err;
        throw unreadable(`the D1 export's dump broke off after ${received} bytes: ${describeCause(err)}.`);
      }
      if (Number.isSafeInteger(length) && received !== length) {
        throw unreadable(`the D1 export's dump was ${received} bytes but Content-Length said ${length}.`);
      }
      const rest = splitter.end();
      if (rest !== undefined) throw unreadable(`the D1 export's dump ends inside a statement (after ${received} bytes): it is incomplete.`);
      flush();
      db.run("COMMIT");
      const bytes = db.export();
      if (bytes.length > maxBytes) {
        throw new BackupError("SOURCE_TOO_LARGE", `${origin}: the database built from the D1 export is ${bytes.length} bytes, over MAX_BYTES (${maxBytes}).`, 413);
      }
      return { bytes, origin, ...(bookmark && BOOKMARK_PATTERN.test(bookmark) ? { d1Bookmark: bookmark } : {}) };
    } finally {
      db.close();
    }
  }

  return {
    origin,
    read: ({ maxBytes }: ReadOptions) => build(maxBytes),
    async open({ maxBytes }: OpenOptions): Promise<SourceStream> {
      // Built in memory either way: the stream hands out the image it already holds.
      const image = await build(maxBytes);
      // Views of the image in slices the size a file source reads, not one chunk of it all.
      let at = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(c) {
          if (at >= image.bytes.length) return c.close();
          const end = Math.min(at + READ_CHUNK_BYTES, image.bytes.length);
          c.enqueue(image.bytes.subarray(at, end));
          at = end;
        },
      });
      return { stream, bytes: image.bytes.length, image, settled: async () => (image.d1Bookmark ? { d1Bookmark: image.d1Bookmark } : {}) };
    },
  };

  function decodeOrFail(decoder: TextDecoder, bytes: Uint8Array, stream: boolean): string {
    try {
      return decoder.decode(bytes, { stream });
    } catch {
      throw unreadable("the D1 export's dump is not UTF-8 text.");
    }
  }
}
