/**
 * The URL source against a real HTTP server on 127.0.0.1 (node:http) through the real
 * global fetch: sized and chunked bodies, auth headers, redirects, error statuses, bodies
 * that end early, HTML and gzip instead of a database, and bodies over MAX_BYTES (the
 * server must see the download stopped, not served to the end).
 */
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackupError } from "../../src/errors.js";
import { createSource } from "../../src/sources/index.js";
import { urlSource } from "../../src/sources/url.js";
import { sha256, writeDatabase } from "../helpers/db.js";
import { backupError } from "../helpers/errors.js";
import { registerSecret } from "../helpers/log-capture.js";

const TOKEN = registerSecret("BACKUP_SOURCE query token", "secret123");
const API_KEY = registerSecret("BACKUP_SOURCE_HEADERS value", "hdr-secret-456");
const HEADERS = { "X-API-Key": API_KEY };
const HUGE_BYTES = 64 * 1024 * 1024;
const SMALL_LIMIT = 1024 * 1024;

let server: Server;
let base: string;
let dir: string;
let db: Uint8Array;

/** What the server did for the huge routes: bytes written before the client went away. */
interface Sent {
  written: number;
  finished: boolean;
  closed: boolean;
}
const sent = new Map<string, Sent>();
const seenHeaders = new Map<string, IncomingMessage["headers"]>();

/** Write `total` bytes (starting with `head`) in 64 KiB chunks, honouring backpressure, until done or the client leaves. */
async function streamHuge(res: ServerResponse, route: string, total: number, head: Uint8Array): Promise<void> {
  const state: Sent = { written: 0, finished: false, closed: false };
  sent.set(route, state);
  res.on("close", () => (state.closed = true));
  const chunk = new Uint8Array(64 * 1024);
  chunk.set(head);
  let first = true;
  while (state.written < total && !state.closed) {
    const piece = first ? chunk : chunk.fill(0, 0, head.length);
    first = false;
    const ok = res.write(piece.subarray(0, Math.min(piece.length, total - state.written)));
    state.written += Math.min(piece.length, total - state.written);
    if (!ok) await drainOrClose(res);
  }
  if (!state.closed) {
    res.end();
    state.finished = true;
  }
}

function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  seenHeaders.set(path, req.headers);
  const sqliteHead = db.subarray(0, 100);
  switch (path) {
    case "/db.sqlite":
      res.writeHead(200, { "Content-Type": "application/vnd.sqlite3", "Content-Length": db.length });
      res.end(db);
      return;
    case "/chunked.sqlite": {
      res.writeHead(200, { "Content-Type": "application/octet-stream" });
      for (let at = 0; at < db.length; at += 300_000) res.write(db.subarray(at, at + 300_000));
      res.end();
      return;
    }
    case "/private.sqlite":
      if (req.headers["x-api-key"] !== API_KEY) {
        res.writeHead(401, { "Content-Type": "text/plain", "WWW-Authenticate": "ApiKey" });
        res.end("unauthorized");
        return;
      }
      res.writeHead(200, { "Content-Length": db.length });
      res.end(db);
      return;
    case "/missing.sqlite":
      res.writeHead(404, { "Content-Type": "text/plain" }).end("no such file");
      return;
    case "/gone.sqlite":
      res.writeHead(410).end();
      return;
    case "/broken.sqlite":
      res.writeHead(500, { "Content-Type": "text/plain" }).end("boom");
      return;
    case "/short.sqlite":
      // Announce the whole database, send half, then close the connection.
      res.writeHead(200, { "Content-Length": db.length });
      res.write(db.subarray(0, db.length / 2), () => req.socket.end());
      return;
    case "/page.html":
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end("<!doctype html><html><body>Please log in</body></html>");
      return;
    case "/db.sqlite.gz": {
      const gz = gzipSync(db);
      res.writeHead(200, { "Content-Type": "application/gzip", "Content-Length": gz.length });
      res.end(gz);
      return;
    }
    case "/encoded.sqlite": {
      // Transfer compression: fetch decodes it, and Content-Length counts the encoded bytes.
      const gz = gzipSync(db);
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Encoding": "gzip", "Content-Length": gz.length });
      res.end(gz);
      return;
    }
    case "/huge-sized.sqlite":
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": HUGE_BYTES });
      void streamHuge(res, path, HUGE_BYTES, sqliteHead);
      return;
    case "/huge-chunked.sqlite":
      res.writeHead(200, { "Content-Type": "application/octet-stream" });
      void streamHuge(res, path, HUGE_BYTES, sqliteHead);
      return;
    case "/huge-not-sqlite.bin":
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": HUGE_BYTES });
      void streamHuge(res, path, HUGE_BYTES, new TextEncoder().encode("PK\u0003\u0004 this is a zip archive"));
      return;
    case "/redirect":
      res.writeHead(302, { Location: `/db.sqlite?token=${TOKEN}` }).end();
      return;
    case "/redirect-elsewhere": {
      // localhost is another origin than 127.0.0.1: a different host for fetch's purposes.
      const port = (req.socket.localPort ?? 0).toString();
      res.writeHead(307, { Location: `http://localhost:${port}/db.sqlite` }).end();
      return;
    }
    case "/redirect-loop":
      res.writeHead(302, { Location: "/redirect-loop" }).end();
      return;
    default:
      res.writeHead(404).end();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seb-url-"));
  db = await writeDatabase(join(dir, "served.db"), { rows: 300, targetBytes: 3 * 1024 * 1024 });
  server = createServer(handle);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const urlOf = (path: string) => `${base}${path}?token=${TOKEN}`;
const source = (path: string, headers: Record<string, string> = HEADERS) => urlSource(fetch, urlOf(path), headers);

function expectNoSecrets(text: string): void {
  expect(text).not.toContain(TOKEN);
  expect(text).not.toContain(API_KEY);
}

async function failure(path: string, maxBytes = 2 ** 32 - 1, headers: Record<string, string> = HEADERS): Promise<BackupError> {
  const src = source(path, headers);
  const be = await backupError(src.read({ maxBytes }));
  expectNoSecrets(be.message);
  expectNoSecrets(JSON.stringify(be));
  expectNoSecrets(src.origin);
  return be;
}

async function waitForClose(route: string): Promise<Sent> {
  for (let i = 0; i < 200 && !sent.get(route)?.closed; i++) await new Promise((r) => setTimeout(r, 10));
  const state = sent.get(route);
  expect(state?.closed).toBe(true);
  return state!;
}

describe("url source: reading", () => {
  it("reads a sized response exactly, with progress against Content-Length, and a redacted origin", async () => {
    const progress: [number, number | undefined][] = [];
    const src = source("/db.sqlite");
    const image = await src.read({ maxBytes: 2 ** 32 - 1, onProgress: (read, total) => progress.push([read, total]) });
    expect(image.bytes.length).toBe(db.length);
    expect(sha256(image.bytes)).toBe(sha256(db));
    expect(src.origin).toBe(`${base}/db.sqlite?[redacted]`);
    expect(image.origin).toBe(src.origin);
    expectNoSecrets(src.origin);
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toEqual([db.length, db.length]);
    expect(progress.every(([, total]) => total === db.length)).toBe(true);
    // The exact preallocated buffer, not a view of a larger one.
    expect(image.bytes.buffer.byteLength).toBe(db.length);
    expect(seenHeaders.get("/db.sqlite")?.["x-api-key"]).toBe(API_KEY);
  });

  it("reads a chunked response (no Content-Length) into an exact-length result", async () => {
    const progress: [number, number | undefined][] = [];
    const image = await source("/chunked.sqlite").read({ maxBytes: 2 ** 32 - 1, onProgress: (read, total) => progress.push([read, total]) });
    expect(image.bytes.length).toBe(db.length);
    expect(sha256(image.bytes)).toBe(sha256(db));
    expect(progress.at(-1)).toEqual([db.length, undefined]);
  });

  it("accepts a chunked body of exactly MAX_BYTES", async () => {
    const image = await source("/chunked.sqlite").read({ maxBytes: db.length });
    expect(sha256(image.bytes)).toBe(sha256(db));
  });

  it("sends BACKUP_SOURCE_HEADERS and follows redirects", async () => {
    const image = await source("/private.sqlite").read({ maxBytes: 2 ** 32 - 1 });
    expect(sha256(image.bytes)).toBe(sha256(db));
    const redirected = await source("/redirect").read({ maxBytes: 2 ** 32 - 1 });
    expect(sha256(redirected.bytes)).toBe(sha256(db));
    expect(seenHeaders.get("/db.sqlite")?.["x-api-key"]).toBe(API_KEY);
  });

  it("does not send BACKUP_SOURCE_HEADERS to another origin after a redirect", async () => {
    seenHeaders.delete("/db.sqlite");
    const image = await source("/redirect-elsewhere").read({ maxBytes: 2 ** 32 - 1 });
    expect(sha256(image.bytes)).toBe(sha256(db));
    expect(seenHeaders.get("/redirect-elsewhere")?.["x-api-key"]).toBe(API_KEY);
    expect(seenHeaders.get("/db.sqlite")?.host).toMatch(/^localhost:/);
    expect(seenHeaders.get("/db.sqlite")?.["x-api-key"]).toBeUndefined();
  });

  it("gives up on a redirect loop with a clear error", async () => {
    const err = await backupError(source("/redirect-loop").read({ maxBytes: 2 ** 32 - 1 }));
    expect(err.code).toBe("SOURCE_UNREADABLE");
    expect(err.message).toMatch(/redirected more than 5 times/);
  });

  it("reads a body with Content-Encoding: gzip (decoded by fetch, Content-Length is the encoded size)", async () => {
    const image = await source("/encoded.sqlite").read({ maxBytes: 2 ** 32 - 1 });
    expect(sha256(image.bytes)).toBe(sha256(db));
  });

  it("is what createSource builds for an http(s) BACKUP_SOURCE, with the injected fetch", async () => {
    const calls: string[] = [];
    const counting: typeof fetch = (input, init) => {
      calls.push(String(input));
      return fetch(input, init);
    };
    const src = createSource({ kind: "url", url: urlOf("/private.sqlite"), headers: HEADERS }, { fetch: counting });
    expect(sha256((await src.read({ maxBytes: 2 ** 32 - 1 })).bytes)).toBe(sha256(db));
    expect(calls).toEqual([urlOf("/private.sqlite")]);
    // And the global fetch by default.
    const byDefault = createSource({ kind: "url", url: urlOf("/db.sqlite"), headers: {} }, {});
    expect(sha256((await byDefault.read({ maxBytes: 2 ** 32 - 1 })).bytes)).toBe(sha256(db));
  });
});

describe("url source: failures", () => {
  it("401 without the header: SOURCE_UNREADABLE pointing at BACKUP_SOURCE_HEADERS", async () => {
    const err = await failure("/private.sqlite", undefined, {});
    expect(err.code).toBe("SOURCE_UNREADABLE");
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/HTTP 401/);
    expect(err.message).toMatch(/BACKUP_SOURCE_HEADERS/);
  });

  it("a wrong header value is not echoed", async () => {
    const err = await failure("/private.sqlite", undefined, { "X-API-Key": "wrong-key-789" });
    expect(err.code).toBe("SOURCE_UNREADABLE");
    expect(err.message).not.toContain("wrong-key-789");
  });

  it("404 and 410: SOURCE_NOT_FOUND; 500: SOURCE_UNREADABLE; each naming the status", async () => {
    for (const [path, status] of [
      ["/missing.sqlite", 404],
      ["/gone.sqlite", 410],
    ] as const) {
      const err = await failure(path);
      expect(err.code).toBe("SOURCE_NOT_FOUND");
      expect(err.status).toBe(502);
      expect(err.message).toContain(`HTTP ${status}`);
      expect(err.message).toContain(`${base}${path}?[redacted]`);
    }
    const err = await failure("/broken.sqlite");
    expect(err.code).toBe("SOURCE_UNREADABLE");
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/HTTP 500 Internal Server Error/);
  });

  it("a body shorter than its Content-Length", async () => {
    const err = await failure("/short.sqlite");
    expect(err.code).toBe("SOURCE_UNREADABLE");
    expect(err.status).toBe(502);
    expect(err.message).toContain(`response body was ${db.length / 2} bytes but Content-Length said ${db.length}`);
  });

  it("an HTML page: NOT_SQLITE", async () => {
    const err = await failure("/page.html");
    expect(err.code).toBe("NOT_SQLITE");
    expect(err.status).toBe(422);
    expect(err.message).toContain("the URL returned an HTML page, not a database");
  });

  it("a gzip file: NOT_SQLITE with the gunzip hint", async () => {
    const err = await failure("/db.sqlite.gz");
    expect(err.code).toBe("NOT_SQLITE");
    expect(err.status).toBe(422);
    expect(err.message).toMatch(/gzip file: gunzip it first/);
  });

  it("a large body that is not a database is stopped after its first bytes", async () => {
    const err = await failure("/huge-not-sqlite.bin");
    expect(err.code).toBe("NOT_SQLITE");
    const state = await waitForClose("/huge-not-sqlite.bin");
    expect(state.finished).toBe(false);
    expect(state.written).toBeLessThan(HUGE_BYTES / 2);
  });

  it("Content-Length over MAX_BYTES: SOURCE_TOO_LARGE before reading, and the download is dropped", async () => {
    const err = await failure("/huge-sized.sqlite", SMALL_LIMIT);
    expect(err.code).toBe("SOURCE_TOO_LARGE");
    expect(err.status).toBe(413);
    expect(err.message).toContain(`is ${HUGE_BYTES} bytes (Content-Length), over MAX_BYTES (${SMALL_LIMIT})`);
    const state = await waitForClose("/huge-sized.sqlite");
    expect(state.finished).toBe(false);
    expect(state.written).toBeLessThan(HUGE_BYTES / 2);
  });

  it("a chunked body over MAX_BYTES: SOURCE_TOO_LARGE as soon as the limit is passed", async () => {
    let last = 0;
    const src = source("/huge-chunked.sqlite");
    const err = (await src.read({ maxBytes: SMALL_LIMIT, onProgress: (n) => (last = n) }).catch((e: unknown) => e)) as BackupError;
    expect(err).toBeInstanceOf(BackupError);
    expect(err.code).toBe("SOURCE_TOO_LARGE");
    expect(err.status).toBe(413);
    expect(err.message).toContain(`sent more than MAX_BYTES (${SMALL_LIMIT}) bytes`);
    expectNoSecrets(err.message);
    expect(last).toBeLessThanOrEqual(SMALL_LIMIT);
    const state = await waitForClose("/huge-chunked.sqlite");
    expect(state.finished).toBe(false);
    expect(state.written).toBeLessThan(HUGE_BYTES / 2);
  });

  it("a refused connection: SOURCE_UNREADABLE naming the cause", async () => {
    const closed = createServer();
    closed.listen(0, "127.0.0.1");
    await once(closed, "listening");
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const src = urlSource(fetch, `http://127.0.0.1:${port}/db.sqlite?token=${TOKEN}`, HEADERS);
    const err = (await src.read({ maxBytes: 1e9 }).catch((e: unknown) => e)) as BackupError;
    expect(err).toBeInstanceOf(BackupError);
    expect(err.code).toBe("SOURCE_UNREADABLE");
    expect(err.status).toBe(502);
    expect(err.message).toContain("ECONNREFUSED");
    expectNoSecrets(err.message);
  });

  it("a header value fetch refuses is not echoed in the error", async () => {
    const bad = "  sec\nret-value-789 ";
    const src = urlSource(fetch, urlOf("/db.sqlite"), { "X-API-Key": bad });
    const err = (await src.read({ maxBytes: 1e9 }).catch((e: unknown) => e)) as BackupError;
    expect(err).toBeInstanceOf(BackupError);
    expect(err.code).toBe("SOURCE_UNREADABLE");
    expect(err.message).not.toContain("ret-value-789");
    expect(err.cause).toBeUndefined();
    expectNoSecrets(err.message);
  });
});
